"""The Textual front end: play, replay, structure editor and jobs. The only package importing Textual."""
