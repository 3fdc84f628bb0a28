"""`discriminator serve`: a durable lip-sync service (FastAPI + uvicorn, one machine).

Modules, one job each: `store` (the SQLite job table), `limits` (what an upload must be),
`worker` (takes jobs, shares model batches between viewers, pastes and encodes while the
model runs), `service` (recovery, admission, expiry), `metrics` (Prometheus text), `app` (the
HTTP layer; the service is found on `app.state`, so the Ray Serve ingress mounts the same
routes), `local` (uvicorn, one process), `ray_app` (`--ray`: the same app and store as a Ray
Serve application with N model replicas; only this module imports Ray). Needs the `serve`
extra (and `lipsync`; `ray` for `--ray`).
"""

from __future__ import annotations

SERVE_HINT = "pip install 'discriminator-cli[lipsync,serve]'"
