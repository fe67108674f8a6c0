"""Back-office operators: the people (not API keys) who log in to the web page under /backoffice.

`operators` keeps who they are in Postgres (login, permission codes, an argon2id hash of the
password, status) and checks a login; `sessions` keeps who is logged in, in Redis.
"""
