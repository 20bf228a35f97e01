"""Deferred completion: a request nothing can serve now, completed when a target
recovers and delivered by a signed callback (policy, runner, callbacks)."""
