"""Runtime, load-time and memory prediction that learns: rules first, LightGBM as history grows.

`features` describes jobs and history without looking ahead in time, `rules` estimates from first principles,
`learned` corrects the rules with LightGBM, `stages` picks the mix by how much comparable history exists, and
`batching` turns predicted memory into batch sizes. Everything here is pure (no database, no subprocess, no
GPU); only `features.shape_from_local` reads files: a local task's yaml and its first documents.
"""
