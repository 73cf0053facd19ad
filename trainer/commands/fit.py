"""face-train fit TASK ...: train a model and write its RUN folder."""
from __future__ import annotations

import argparse

from ..tasks import broken_tasks, tasks


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``fit`` with one sub-command per registered task."""
    parser = subparsers.add_parser("fit", help="train a model and write a RUN folder")
    sub = parser.add_subparsers(dest="task", metavar="TASK")
    sub.required = True
    for name, module in sorted(tasks().items()):
        task_parser = sub.add_parser(name, help=(module.__doc__ or name).strip().splitlines()[0])
        module.add_fit_arguments(task_parser)
        task_parser.set_defaults(func=_handler(module))
    for name, error in broken_tasks().items():
        broken = sub.add_parser(name, help=f"(unavailable: {error})")
        broken.set_defaults(func=_broken(name, error))


def _handler(module):
    def run(args: argparse.Namespace) -> int:
        from ..distribute import describe, plan_for, scale_for_devices

        plan = plan_for(args)
        if plan is None or plan.replicas == 1:   # one device: the task runs exactly as it always did
            result = module.fit(args)
        else:
            record = scale_for_devices(args, plan)
            print(describe(record), flush=True)
            with plan.strategy.scope():   # variables, optimizers and fit() of the task live on every replica
                result = module.fit(args)
            if (result.path / "run.yaml").is_file():
                from ..run import read_run, update_run

                update_run(read_run(result.path, need_model=False), training={"distribute": record})
        print(f"wrote {result.path}")
        return 0
    return run


def _broken(name: str, error: str):
    def run(args: argparse.Namespace) -> int:
        from ..errors import RunError
        raise RunError(f"task module trainer/tasks/{name}.py does not import: {error}")
    return run
