"""The :smoke configs the tests train, pointed at one test session's data and teacher."""

import importlib


def smoke_config(name, shared, **overrides):
  """`configs/NAME.py:smoke` reading the dataset and teacher under `shared`."""
  config = importlib.import_module(f'configs.{name}').get_config('smoke')
  config.data.data_dir = str(shared / 'data')
  config.teacher.checkpoint = str(shared / 'teacher')
  config.update(overrides)
  return config
