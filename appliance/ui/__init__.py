"""The browser admin UI: server-rendered pages (Jinja2 templates in ``web/``).

Pages read through the store; every change a page makes goes through the
JSON API (``web/static/js/api.js``) with the session cookie, so the UI and
the API share one set of rules, one validation and one permission check.
"""
