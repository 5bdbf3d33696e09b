"""Errors a consumer reports to its client as a JSON error frame."""


class ClientError(Exception):
    """A request the client got wrong; `code` is stable, `detail` is for people. An error caused by a
    message frame names that message's `client_id` (when the frame had a valid one); `fields` adds
    what else the client needs (rate_limited: `retry_after_ms`)."""

    def __init__(self, code, detail="", client_id=None, **fields):
        super(ClientError, self).__init__(code)
        self.code = code
        self.detail = detail
        self.client_id = client_id
        self.fields = fields

    def as_frame(self):
        frame = {"type": "error", "code": self.code, "detail": self.detail}
        if self.client_id is not None:
            frame["client_id"] = self.client_id
        frame.update(self.fields)
        return frame
