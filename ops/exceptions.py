"""Exceptions of the deployment's operations."""


class DeploymentError(Exception):
    """Something a person must fix before the deployment can run; the message says what."""
