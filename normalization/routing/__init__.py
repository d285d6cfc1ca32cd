"""Routing one model across its deployments: which to try, in what order, and when to move on.

- :mod:`~normalization.routing.route`: a request planned for each deployment that can serve it (pure);
- :mod:`~normalization.routing.failover`: which failures another provider may not repeat (pure);
- :mod:`~normalization.routing.breaker`: the circuit breaker that skips a failing provider for a
  cooling period, in process or shared (the app supplies a Redis store);
- :mod:`~normalization.routing.router`: runs a route's upstream calls, each failing over on its own.
"""
