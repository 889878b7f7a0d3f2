"""Policies and agents (torch). Importing :mod:`policies.bundles` registers every policy config
(``POLICIES``) and agent kind (``AGENTS``); the package itself imports nothing, so an agent's
module loads only what it uses."""
