"""The app "accounts" at /user of the several-apps lab test, with 4 uWSGI processes of its own."""

from flask import Flask, jsonify

app = Flask(__name__)
app.add_url_rule("/healthz", "healthz", lambda: jsonify(app="accounts"))
app.add_url_rule("/<int:user_id>", "user", lambda user_id: jsonify(app="accounts", user=user_id))
