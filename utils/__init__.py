"""Finished versions of everything the course notebooks teach.

One concept a module: ``ddpm_utils`` the diffusion math, ``basic_unet`` the plain U-Net of notebooks
01 and 02, ``unet_utils`` the optimised U-Net of notebook 03 (class-conditional for 04), ``guidance``
classifier-free guidance (04), ``ablation`` the switchable U-Net of 03's ablation, ``data`` the dataset,
``training`` the training loop with checkpoints, ``fast`` the choice of execution path (with
``fast_path`` its switches, ``path_apply`` which applies one around a model, and ``path_probe``,
which times the candidates where no rule holds), ``profiles``
the run sizes, ``runtime`` the device and seed helpers, ``plotting``, ``explore`` and ``diagrams`` the
pictures and interactive helpers, ``metrics`` numbers about generated images, ``captions`` and
``clip`` the captions, tokenizer and small CLIP of notebook 05, ``judge`` the classifier of 06, with
``verdict`` its verdict and ``copies`` the distances it finds copies and sameness by, and ``grading`` the checks the notebooks run. Later notebooks import from here instead of
defining the same blocks again. The instructor's tools (release, autograding) live in the ``grader``
package beside this one.
"""
