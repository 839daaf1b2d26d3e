"""The ``profiling`` receiver: continuous CPU profiles of every process on the node
(config :mod:`.config`, composition root :mod:`.receiver`)."""
