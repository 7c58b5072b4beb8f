"""Errors a user can act on: each carries one line naming the field or file and what is wrong."""


class CostsimError(ValueError):
    """Base class: the CLI prints the message on one line and exits with code 2."""


class ScenarioError(CostsimError):
    """The scenario file (or an override) is malformed: unknown key, wrong type, missing file."""


class PlanError(CostsimError):
    """The parallel plan cannot run: a divisibility fails or it does not fit in memory."""
