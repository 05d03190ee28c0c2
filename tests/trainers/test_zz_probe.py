def test_probe(trainer_datasets):
    import subprocess
    print(trainer_datasets)
    print(subprocess.run(["bash", "-c", f"ls {trainer_datasets.preprocessed}/*; du -sh {trainer_datasets.preprocessed}"], capture_output=True, text=True).stdout)
