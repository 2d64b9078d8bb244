"""The API's blueprints: health, scoring, models (admin included) and docs."""
