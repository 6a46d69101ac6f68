"""A real local platform for tests and the demo: etcd, kube-apiserver, Prometheus, PostgreSQL.

Nothing here is a mock. Each component is the real binary started on loopback, waited for with a
timeout, and torn down with its temporary directory. When a component fails to start, the error
carries the tail of its log so a failing test says why.
"""
