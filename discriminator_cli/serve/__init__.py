"""`discriminator serve`: a durable lip-sync service (FastAPI), locally or on Ray Serve.

Modules, one job each: `store` (the SQLite job table), `limits` (what an upload must be),
`worker` (takes jobs, shares model batches between viewers, pastes and encodes while the
model runs), `metrics` (Prometheus text), `app` (the HTTP layer), `ray_app` (the same app as
a Ray Serve deployment). Needs the `serve` extra (and `lipsync`); Ray mode also `ray`.
"""

from __future__ import annotations

SERVE_HINT = "pip install 'discriminator-cli[lipsync,serve]'"
RAY_HINT = "pip install 'discriminator-cli[lipsync,serve,ray]'"
