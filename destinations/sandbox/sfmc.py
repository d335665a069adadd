"""Placeholder: replaced by the real sfmc emulator (destinations issue)."""

from werkzeug.wrappers import Response


class SfmcSandbox:
    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        return Response("not implemented yet", status=501)(environ, start_response)

    def reset(self) -> None:
        pass

    def state(self) -> dict:
        return {}
