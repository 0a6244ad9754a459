"""The offline demo: sample data and a tiny base model.

Importing it lets data.source name the sample company data, `sample://round-N` (staged like a folder), and
lets the local backend build the tiny base model when model.base_model is unset.
"""
from pipelines.backend import BASE_MODEL_STAND_INS
from pipelines.demo.sample_data import SAMPLE_SCHEME, write_source
from pipelines.demo.tiny_model import tiny_base_model_builder
from pipelines.staging import DATA_SOURCE_WRITERS

DATA_SOURCE_WRITERS[SAMPLE_SCHEME] = write_source
BASE_MODEL_STAND_INS.append(tiny_base_model_builder)
