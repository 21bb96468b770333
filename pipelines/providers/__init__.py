"""One module per vendor service: each lists the providers it offers, by stage."""
