"""``end-to-end``: a vision-language-action policy whose words reach the perceived objects
through attention: ``config`` (and presets), ``tokenizer``, ``links``, ``model``, ``training``
(its arrays and batches) and ``agent``. :mod:`policies.bundles` imports the agent, which
registers the kind."""
