# Runs the controller; app.run() leaves every output safe however it ends.
import app

app.run()
