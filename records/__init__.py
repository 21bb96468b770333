"""Call records: what each call was, captured as it happens, stored, served and measured."""
