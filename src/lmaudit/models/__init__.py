"""Models: the three-method contract and backends addressed by spec strings."""

from lmaudit.models.base import Model, backends, load_model, register_backend

register_backend("openai", "lmaudit.models.openai", "load_openai",
                 "openai:<model>@<base_url>[,<base_url>...] any OpenAI-compatible server")

__all__ = ["Model", "backends", "load_model", "register_backend"]
