"""The RL controller: policy module, GRPO learner, reward designs and the controller actor."""
