"""A Tk window for the computer-use tests: ``python tk_app.py WIDTH HEIGHT``.

It fills the screen with white and shows a red square (screen pixels 100..399 on both axes) that
turns green when clicked, and a text entry (x 100..1099, y 500..599) that has the keyboard focus.
It prints ``READY`` once it is on the screen.
"""

import sys
import tkinter as tk

width, height = int(sys.argv[1]), int(sys.argv[2])
root = tk.Tk()
root.geometry(f"{width}x{height}+0+0")
root.configure(bg="white")
square = tk.Frame(root, bg="red", width=300, height=300)
square.place(x=100, y=100)
square.bind("<Button-1>", lambda event: square.configure(bg="green"))
entry = tk.Entry(root, font=("Helvetica", 40), bg="white", fg="black", relief="flat",
                 highlightthickness=0, insertofftime=0, insertwidth=0)
entry.place(x=100, y=500, width=1000, height=100)


def ready() -> None:
    entry.focus_force()
    print("READY", flush=True)


root.after(300, ready)
root.mainloop()
