"""gunicorn settings for CohortSync's web process (docs/deployment.md).

    gunicorn -c deploy/gunicorn.conf.py

Run it behind an https reverse proxy that also serves `staticfiles/` at /static/. The
variables below change the defaults without editing this file.
"""

import os

wsgi_app = "cohortsync_site.wsgi:application"

# Loopback by default: the reverse proxy on the same host is the only client. Use
# 0.0.0.0:8000 when the proxy or load balancer is on another host.
bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
# Sync workers: the admin is a handful of staff, and every request is short except profile
# uploads, which import in the request (use `manage.py import_profiles` for millions).
workers = int(os.environ.get("WEB_WORKERS", "3"))
timeout = int(os.environ.get("WEB_TIMEOUT_SECONDS", "300"))
graceful_timeout = 30
keepalive = 5
# Recycle a worker now and then, so a slow leak never grows for weeks.
max_requests = 1000
max_requests_jitter = 100

# Trust X-Forwarded-* only from the proxy (SECURE_PROXY_SSL_HEADER says which header means https).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")

# Logs to stdout/stderr, for journald or the platform's log collector.
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# gunicorn 24+ opens a control socket in $HOME/.gunicorn (or $XDG_RUNTIME_DIR): the service
# user's home is the root-owned checkout, and two instances of one user would share the path.
# Nothing here uses it (reload with SIGHUP), so leave it off. Older gunicorn ignores the name.
control_socket_disable = True
# Worker heartbeats on a RAM-backed directory where there is one (a slow disk stalls them).
if os.path.isdir("/dev/shm"):
    worker_tmp_dir = "/dev/shm"
