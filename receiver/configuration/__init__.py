"""Internals of the agent configuration; the public API is :mod:`receiver.config`.

Data flows one way: YAML text → located tree (:mod:`.yaml_source`) → merged tree →
typed, validated dataclasses (:mod:`.decode`, driven by the schema in :mod:`.components`
and :mod:`.service`) → :class:`~.service.AgentConfig`.
"""
