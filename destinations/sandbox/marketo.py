"""Placeholder: replaced by the real marketo emulator (destinations issue)."""

from werkzeug.wrappers import Response


class MarketoSandbox:
    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        return Response("not implemented yet", status=501)(environ, start_response)

    def reset(self) -> None:
        pass

    def state(self) -> dict:
        return {}
