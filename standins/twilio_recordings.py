"""Recordings of live calls at the Twilio stand-in (`Calls/{CallSid}/Recordings.json`).

A recording runs until its call ends; then its `RecordingStatusCallback` is posted, signed.
"""

import secrets
from datetime import UTC, datetime

from aiohttp import web

from standins.twilio_wire import API, rfc2822, twilio_error


class CallRecordings:
    """The Twilio stand-in's Recordings resource (a part of `TwilioRestStandIn`).

    Records: `recordings` (sid -> the recording's state: its call, channels, status).
    """

    account_sid: str
    http_url: str

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.recordings: dict[str, dict] = {}

    async def _recordings_done(self, call_sid: str) -> None:
        """The call has ended: so have its recordings."""
        for sid, recording in self.recordings.items():
            if recording["call_sid"] == call_sid and recording["status"] == "in-progress":
                await self._recording_done(sid, recording)

    async def _record(self, request: web.Request) -> web.Response:
        recorded, response = await self._admit(request)
        call_sid = request.match_info["call_sid"]
        if response is None and not self._live(call_sid):
            response = twilio_error(
                404, 20404, f"The requested resource {request.path} was not found"
            )
        channels = recorded.form.get("RecordingChannels", "mono")
        if response is None and channels not in ("mono", "dual"):
            response = twilio_error(400, 21215, f"Invalid RecordingChannels: {channels}")
        if response is None:
            sid = "RE" + secrets.token_hex(16)
            self.recordings[sid] = {
                "call_sid": call_sid,
                "channels": 2 if channels == "dual" else 1,
                "callback": recorded.form.get("RecordingStatusCallback"),
                "events": recorded.form.get("RecordingStatusCallbackEvent", "completed").split(),
                "start": datetime.now(UTC),
                "status": "in-progress",
            }
            response = web.json_response(self._recording(sid), status=201)
        recorded.status = response.status
        return response

    async def _recording_done(self, sid: str, recording: dict) -> None:
        recording["status"] = "completed"
        recording["duration"] = int((datetime.now(UTC) - recording["start"]).total_seconds())
        if not recording["callback"] or "completed" not in recording["events"]:
            return
        url = f"{self.http_url}{API}/Accounts/{self.account_sid}/Recordings/{sid}"
        await self._post(
            "recording",
            recording["callback"],
            {
                "AccountSid": self.account_sid,
                "CallSid": recording["call_sid"],
                "RecordingSid": sid,
                "RecordingUrl": url,
                "RecordingStatus": "completed",
                "RecordingDuration": str(recording["duration"]),
                "RecordingChannels": str(recording["channels"]),
                "RecordingStartTime": rfc2822(recording["start"]) or "",
                "RecordingSource": "StartCallRecordingAPI",
                "RecordingTrack": "both",
                "ErrorCode": "0",
            },
        )

    def _recording(self, sid: str) -> dict:
        """The Recording resource JSON."""
        recording = self.recordings[sid]
        call_uri = f"{API}/Accounts/{self.account_sid}/Calls/{recording['call_sid']}"
        return {
            "sid": sid,
            "account_sid": self.account_sid,
            "call_sid": recording["call_sid"],
            "conference_sid": None,
            "api_version": "2010-04-01",
            "date_created": rfc2822(recording["start"]),
            "date_updated": rfc2822(datetime.now(UTC)),
            "start_time": rfc2822(recording["start"]),
            "duration": str(recording.get("duration", -1)),
            "channels": recording["channels"],
            "status": recording["status"],
            "source": "StartCallRecordingAPI",
            "track": "both",
            "price": None,
            "price_unit": "USD",
            "error_code": None,
            "encryption_details": None,
            "uri": f"{call_uri}/Recordings/{sid}.json",
        }
