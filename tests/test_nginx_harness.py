"""The load-balancer harness's nginx: its config and its access log, literal in, literal out."""

from pathlib import Path

from harness.nginx import AccessLine, nginx_config, parse_access_line


def test_an_access_line_names_every_instance_tried_and_what_each_answered():
    line = '1765080000.125 GET /media/CA1.17.x 101 "127.0.0.1:4001, 127.0.0.1:4002" "502, 101"'
    assert parse_access_line(line) == AccessLine(
        at=1765080000.125,
        method="GET",
        path="/media/CA1.17.x",
        status=101,
        upstreams=("127.0.0.1:4001", "127.0.0.1:4002"),
        upstream_statuses=("502", "101"),
    )
    assert parse_access_line(line).retried


def test_an_access_line_without_an_upstream_has_none():
    line = parse_access_line('1765080000.5 POST /voice 502 "-" "-"')
    assert (line.upstreams, line.upstream_statuses, line.retried) == ((), (), False)


def test_the_config_balances_round_robin_and_never_retries_a_503():
    config = nginx_config(Path("/tmp/lb"), 8080, ["127.0.0.1:4001", "127.0.0.1:4002"])
    assert "server 127.0.0.1:4001 max_fails=1 fail_timeout=10s;" in config
    assert "least_conn" not in config and "hash" not in config
    assert "proxy_next_upstream error timeout;" in config
    assert "listen 127.0.0.1:8080;" in config and "pid /tmp/lb/nginx.pid;" in config
    assert "proxy_set_header Connection $connection_upgrade;" in config


def test_an_instance_taken_out_is_marked_down():
    upstreams = ["127.0.0.1:4001", "127.0.0.1:4002"]
    config = nginx_config(Path("/tmp/lb"), 8080, upstreams, down=frozenset(upstreams[:1]))
    assert "server 127.0.0.1:4001 max_fails=1 fail_timeout=10s down;" in config
    assert "server 127.0.0.1:4002 max_fails=1 fail_timeout=10s;" in config
