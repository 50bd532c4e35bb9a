"""agent-plugin-ecs: the ``ecs`` backend, each flow run an AWS ECS task.

The hooks are in :mod:`agent_plugin_ecs.hooks` (the ``ecs`` entry point of ``agent.backends``);
the modules beside it hold the platform logic, each named for what it holds: ``schemas``
(settings and run config), ``taskdef`` (definitions by content hash), ``runtask`` (run-task
arguments and the launch), ``tasks`` (following tasks), ``output`` (CloudWatch logs),
``network`` (the default VPC), ``preflight``, ``state`` (the per-agent state) and ``aws``.
"""

__version__ = "0.1.0"
