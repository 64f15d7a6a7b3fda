"""MEMO-Tiny's own parts and their trainers, beside the synthetic world (``data/synthetic/``) they are trained on.

The paper's networks and their two-stage training live in ``models/`` and ``training/``; MEMO-Tiny also needs
parts the paper takes from elsewhere, trained here at its small size:

vae.py (a small diffusers ``AutoencoderKL``, ``train-vae``) ; emotion_head.py (the audio emotion detector head,
``train-emotion``) ; analyzer.py (the face analyzer that measures the synthetic world, ``train-analyzer``) ;
cli.py (``train-vae`` and ``train-emotion``). Their loops share ``training/loop.py`` and ``training/checkpoints.py``.
"""
