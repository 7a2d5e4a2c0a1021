"""Discrete-event simulation of a GPU cluster running a SpectraBench workload, for hardware this machine lacks.

`specs` describes what-if hardware, `truth` is the ground-truth cost model (kept apart from `prediction`: the
scheduler only ever sees predictions), `workload` turns a profile into work items plus their hidden truth, and
`cluster` replays a policy against that truth. Import the submodules directly; this package imports nothing, so
importing `spectrabench.simulate.truth` pulls in nothing else of the simulator.
"""
