"""vmc's SINGD adapter: with interval T > 1 it captures the per-walker layer statistics only at factor-update
steps, and its steps equal those of a run that captures them at every step."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from qsim.optim import layer_statistics, singd, singd_state
from vmc.optimizers import make_optimizer

T, STEPS, LR, DAMPING = 3, 7, 0.05, 0.1


class Net(nn.Module):
    @nn.compact
    def __call__(self, r):                           # one walker r (6,) -> log|psi|
        h = jnp.tanh(nn.Dense(5)(r))
        return jnp.sum(nn.Dense(1)(h)) - 0.5 * jnp.sum(r * r)


def test_statistics_only_at_factor_updates_and_same_steps():
    net = Net()
    rng = np.random.default_rng(0)
    params = net.init(jax.random.key(0), jnp.zeros(6))
    captured = []                                    # steps at which log|psi| ran (inside the capture only)

    def log_psi(p, r):
        jax.debug.callback(lambda: captured.append(step[0]))
        return net.apply(p, r)

    step = [0]
    opt = make_optimizer("singd", log_psi=log_psi, module=net, learning_rate=LR, decay=None, damping=DAMPING,
                         singd_options={"structure": "diagonal", "interval": T, "max_norm": 1e9})
    update = jax.jit(opt.update)
    # the reference: the same transform given statistics at every step (they are unused between updates)
    tx = singd(learning_rate=LR, structure="diagonal", damping=DAMPING, momentum=0.9, update_interval=T,
               lr_cov=1e-2, factor_dtype=jnp.float64)

    @jax.jit
    def ref_update(g, s, p, walkers):
        _, stats = layer_statistics(lambda q, x: net.apply({"params": q}, x), p, walkers)
        return tx.update(g, s, p, layer_stats=stats)

    state, ref_state = opt.init(params), tx.init(params["params"])
    ref_params = params
    for t in range(STEPS):
        step[0] = t
        walkers = jnp.asarray(rng.normal(size=(8, 6)))
        grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), params)
        upd, state = update(grads, state, params, walkers=walkers)
        jax.effects_barrier()
        params = optax.apply_updates(params, upd)
        ref_upd, ref_state = ref_update(grads["params"], ref_state, ref_params["params"], walkers)
        ref_params = {"params": optax.apply_updates(ref_params["params"], ref_upd)}
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=f"step {t}")
    assert sorted(set(captured)) == list(range(0, STEPS, T))       # 0, 3, 6: the factor-update steps only
    k = np.asarray(singd_state(state).factors["Dense_0"].K)
    assert np.abs(k - 1.0).max() > 1e-4              # the factors moved, so the statistics mattered
