# jobs/
