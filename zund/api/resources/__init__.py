"""One module per Zun API resource; ``zund.api.app.ZunAPI`` mixes them in."""
