"""Finished versions of everything the course notebooks teach.

Each module holds one concept: ``ddpm_utils`` the diffusion math, ``unet_utils`` the optimised
U-Net of notebook 03, ``basic_unet`` the plain U-Net of notebooks 01 and 02, ``data`` the dataset,
``training`` the training loop with checkpoints, ``plotting`` the pictures, ``grading`` the checks
the notebooks run, ``profiles`` the run sizes and ``runtime`` the device and seed helpers.
Later notebooks import from here instead of defining the same blocks again.
"""
