"""The back office's web page under /backoffice: server-rendered (Jinja2), in Brazilian
Portuguese, working without JavaScript. Operators log in (gateway/operators); each screen calls
the same feature functions the HTTP API calls, and each action is recorded under the operator's
login."""
