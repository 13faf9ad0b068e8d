"""Behaviour from your own logs: ``peakchaos calibrate``.

Access logs (nginx/Apache combined or common format, JSON lines; gzip accepted; streamed, so a
multi-GB log needs constant memory) become a profile: states from a route map or automatic path
templating, sessions by a session field or client + user agent with an inactivity timeout, the
transition matrix with entry and exit, think times fitted per state (exponential / lognormal,
truncated and censored, chosen by AIC), the arrival curve as a ``step`` shape, optional behaviour
mixes. See docs/calibration.md::

    from pytest_peakchaos.calibrate import calibrate, write_outputs
    cal = calibrate(["access.log.gz"], routes="routes.yml", timeout=1800)
    write_outputs(cal, profile="profile.yml", report="calibration.html")

numpy and scipy are needed (``pip install 'pytest-peakchaos[calibrate]'``); importing this
package does not load them.
"""

from __future__ import annotations

from .core import DEFAULT_EXCLUDE, Calibration, calibrate
from .logs import CalibrationError, JsonFields
from .output import write_outputs
from .routes import RouteMap

__all__ = ["DEFAULT_EXCLUDE", "Calibration", "CalibrationError", "JsonFields", "RouteMap", "calibrate", "write_outputs"]
