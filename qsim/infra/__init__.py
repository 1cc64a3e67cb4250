"""Infrastructure shared by every command: settings (every ``QSIM_*`` variable, read once), validation,
the structural cache, run directories, the driver loop, device meshes, plots and the CLI.
"""
