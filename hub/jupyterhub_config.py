"""JupyterHub settings of the course's class server. `make hub` (hub/hubctl.py) starts
``jupyterhub -f hub/jupyterhub_config.py`` as root with COURSE_HUB_PREFIX (the class's folders),
COURSE_HUB_ROSTER (who may log in), COURSE_HUB_URL (where it listens) and two free internal ports.

For a real class, change the authenticator (below), put HTTPS in front (README, "Teaching a class on
JupyterHub") and, on several machines or Kubernetes, the exchange's location.
"""
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from hub_layout import DEFAULT_PREFIX, PREFIX_VARIABLE, Layout, read_roster  # noqa: E402

c = get_config()  # noqa: F821 (provided by JupyterHub)

layout = Layout(Path(os.environ.get(PREFIX_VARIABLE, DEFAULT_PREFIX)))
roster = read_roster(Path(os.environ.get("COURSE_HUB_ROSTER", HERE / "roster.csv")))
ROLE = {member.name: member.role for member in roster}

# Where the hub listens (the proxy, configurable-http-proxy from npm, is started by the hub) and where it
# keeps its database and secrets: state/, which only root can read.
c.JupyterHub.bind_url = os.environ.get("COURSE_HUB_URL", "http://127.0.0.1:8000")
c.JupyterHub.hub_port = int(os.environ.get("COURSE_HUB_API_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('COURSE_HUB_PROXY_API_PORT', '8001')}"
c.ConfigurableHTTPProxy.command = [str(layout.proxy_command)]
c.JupyterHub.db_url = f"sqlite:///{layout.state / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(layout.state / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(layout.pid_file)
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server (their files stay)

# Who logs in. The demo authenticator takes the roster's names and one shared password (state/demo-password).
# A real class switches to the university's logins, for instance:
#   PAM, the machine's own passwords:   c.JupyterHub.authenticator_class = "pam"
#   OAuth (pip install oauthenticator): c.JupyterHub.authenticator_class = "generic-oauth" with
#     c.GenericOAuthenticator.client_id, .client_secret, .oauth_callback_url and .authorize_url, .token_url,
#     .userdata_url from the university's identity provider; or "github", "google", "azuread".
# Keep allowed_users (or the identity provider's groups) and admin_users below whichever you choose.
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = layout.password_file.read_text().strip()
c.Authenticator.allowed_users = set(ROLE)
c.Authenticator.admin_users = {name for name, role in ROLE.items() if role == "instructor"}

# Each user's server runs as their own login on this machine (LocalProcessSpawner: the hub is root), so
# the file system keeps students apart: homes are mode 700, the instructor's course is theirs alone.
# SimpleLocalProcessSpawner would run everyone as one login and is not for a class.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(layout.env / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.disable_user_config = True  # ~/.jupyter cannot switch the Formgrader back on
c.Spawner.start_timeout = 300         # a busy machine starts a server in tens of seconds
c.Spawner.http_timeout = 300
# Passed on to every server when `make hub` is started with them (the test's small data and fast profile).
c.Spawner.env_keep = ["LANG", "LC_ALL", "COURSE_PROFILE", "COURSE_DATA_DIR"]


def by_role(spawner):
    """Open the course (with the Formgrader) for the instructor and the home folder for a student; give
    each the Jupyter settings of their role and a checkpoint folder of their own."""
    instructor = ROLE.get(spawner.user.name) == "instructor"
    home = os.path.expanduser(f"~{spawner.user.name}")
    spawner.notebook_dir = str(layout.course) if instructor else home
    spawner.environment.update({
        "JUPYTER_CONFIG_PATH": str(layout.role_config("instructor" if instructor else "student")),
        "PATH": f"{layout.env / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "COURSE_CHECKPOINT_DIR": os.path.join(home, "checkpoints"),
        PREFIX_VARIABLE: str(layout.prefix),  # marks the class's processes for `make hub-stop`
    })
    if instructor:  # `make autograde` in their terminal uses the class environment (the Makefile's VENV)
        spawner.environment["VENV"] = str(layout.env)
    if "COURSE_DATA_DIR" not in os.environ:
        spawner.environment["COURSE_DATA_DIR"] = os.path.join(home, "data")


c.Spawner.pre_spawn_hook = by_role

# A service token (state/admin-token) for measuring the class server (benchmarks/hub_load.py) and the tests:
# it starts and stops users' servers through the hub's REST API.
c.JupyterHub.services = [{"name": "course-measure", "api_token": layout.token_file.read_text().strip()}]
c.JupyterHub.load_roles = [{"name": "course-measure", "services": ["course-measure"],
                            "scopes": ["admin:servers", "list:users", "read:users"]}]
