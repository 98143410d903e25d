"""Zun v1 REST API: microversions, errors, auth, policy, schemas, views, app."""
