"""The offline demo: sample data and a tiny base model.

Importing it lets data.source name the sample company data, `sample://round-N` (staged like a folder).
"""
from pipelines.demo.sample_data import SAMPLE_SCHEME, write_source
from pipelines.staging import register_data_source

register_data_source(SAMPLE_SCHEME, write_source)
