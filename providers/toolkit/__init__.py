"""What every HTTP adapter needs and no adapter should write again.

- :mod:`providers.toolkit.retry`: one retry loop; each provider's rules are a :class:`RetryPolicy` value.
- :mod:`providers.toolkit.results`: result references (URLs, data URIs, base64) to checked image bytes.
- :mod:`providers.toolkit.failures`: secret scrubbing, bad-response and connection-failure errors,
  parsing a JSON answer into a model.
- :mod:`providers.toolkit.hosts`: allow-list entries and loopback detection for configured URLs.
"""
