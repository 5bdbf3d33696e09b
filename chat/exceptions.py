"""Errors a consumer reports to its client as a JSON error frame."""


class ClientError(Exception):
    """A request the client got wrong; `code` is stable, `detail` is for people."""

    def __init__(self, code, detail=""):
        super(ClientError, self).__init__(code)
        self.code = code
        self.detail = detail

    def as_frame(self):
        return {"type": "error", "code": self.code, "detail": self.detail}
