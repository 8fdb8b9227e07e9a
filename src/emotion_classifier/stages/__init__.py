"""One module per DVC stage, each with `run(params, root)`: read its params, call the library, write its outputs
under `root` (the project folder: the working directory under DVC), at the paths of `paths.py`.

dvc.yaml's code deps of a stage are its module and what that imports (codedeps walks them; tests/test_dvc_deps.py
keeps dvc.yaml exact), so a change to one stage's code reruns that stage and what consumes its outputs, nothing
else. `stages/<name>.py` at the project root (what dvc.yaml runs) and the `emotion-*` console scripts call these
through cli.py. Every stage imports this file: keep it free of code.
"""
