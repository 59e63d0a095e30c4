"""Recommending: training, full-ranking evaluation, metrics and the tools around a trained model.

Layer 2: imports ``common``, ``data`` and ``models`` only.

* ``sequences``   — left padding, batching and the training windows every model reads;
* ``losses``      — the ranking margin loss (attack and GRO student) and negative sampling;
* ``metrics``     — HR@k, NDCG@k, MRR, agreement on full rankings;
* ``training``    — ``TrainConfig`` and the early-stopped training loop;
* ``evaluation``  — full-ranking evaluation of a model on a split;
* ``intervals``   — 95% intervals: bootstrap over test users, spread over seeds;
* ``checkpoints`` — saving and loading models atomically, with their training record;
* ``bias``, ``compare``, ``visualize``, ``interactive`` — looking at what a model recommends.
"""
