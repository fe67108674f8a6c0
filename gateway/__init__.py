"""What terminals and the back office call, and the Redis side: the HTTP application (app.py, its
composition root), one package per feature, and the platform beneath them with no business rules."""
