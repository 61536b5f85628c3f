"""twistd plugin: ``twistd -n tau --config FILE``. Kept tiny; tau.app loads only when run."""
from twisted.application.service import ServiceMaker

tau = ServiceMaker(
    "tau",
    "tau.app.tap",
    "tau: mail, calendars, files, chat and calls in one reactor",
    "tau",
)
