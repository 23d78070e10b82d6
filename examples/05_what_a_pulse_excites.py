"""Which cells does one MEA pulse excite directly? EI2 with its synapses and noise off, one
biphasic pulse per channel in turn (20 ms apart), at 10, 20 and 30 uA.

The EI cells have a soma and one dendrite and no axon, so the field acts through the
difference of the extracellular potential between the two compartments: it drives an axial
current dV_e / R_axial into the soma (Rattay's activating function for two compartments).
The cathodic phase depolarises a soma nearer the electrode than its dendrite, the anodic
phase one whose dendrite is nearer, so a cell's direct threshold is a size of
|V_e(dendrite) - V_e(soma)|, whatever its orientation."""

import numpy as np

from livn import make
from livn.io import biphasic_pulse

env = make("EI2")
system, network = env.system, env.system.network
env.set_params({name: 0.0 for name in env.default_params()})  # no synapses, no noise: direct effects only
env.record_spikes()
channels, gids, spacing = system.num_channels, system.gids(), 20.0
# |V_e(dendrite) - V_e(soma)| per uA of each channel, mV; horizontal soma-electrode distance, um
gradient = np.array([np.abs(network.field_transfer(g)[1] - network.field_transfer(g)[0]) for g in gids])
distance = np.linalg.norm(system.coordinates[gids, None, :2] - system.electrodes[None, :, :2], axis=2)
print("amplitude  excited (cell, channel) pairs  soma distance median / max  threshold |dVe|  strongest unexcited |dVe|")
for amplitude in (10.0, 20.0, 30.0):
    pulse = biphasic_pulse(amplitude, dt=env.dt)
    stimulus = np.zeros((int(round(channels * spacing / env.dt)), channels))
    for channel in range(channels):
        start = int(round((channel * spacing + 2.0) / env.dt))
        stimulus[start:start + len(pulse), channel] = pulse
    env.clear()
    it, t, *_ = env.run(channels * spacing, stimulus=stimulus)
    excited = np.zeros((len(gids), channels), dtype=bool)
    for gid, time in zip(it, t):
        excited[np.searchsorted(gids, gid), int(time // spacing)] = True
    drive = gradient * amplitude
    quiet = drive[~excited].max()
    if not excited.any():
        print(f"{amplitude:6.0f} uA  {0:28d}  {'-':>12s} / {'-':>3s}     {'-':>11s}     {quiet:20.2f} mV")
        continue
    print(f"{amplitude:6.0f} uA  {excited.sum():28d}  {np.median(distance[excited]):12.0f} / {distance[excited].max():3.0f} um"
          f"  {drive[excited].min():11.2f} mV  {quiet:20.2f} mV")
