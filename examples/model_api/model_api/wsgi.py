"""WSGI entry point for uWSGI: module model_api.wsgi, callable app."""

from model_api.app import create_app

app = create_app()
