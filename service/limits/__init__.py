"""Fair use across callers: the per-caller request rate, kept in Redis for every api replica."""
