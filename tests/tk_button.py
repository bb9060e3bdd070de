"""A Tk window with two buttons, for the OCR locator test: prints which button was clicked.

    DISPLAY=:99 python tests/tk_button.py
"""

import tkinter as tk

root = tk.Tk()
root.title("launcher")
root.geometry("800x600+0+0")
tk.Label(root, text="Mission control", font=("DejaVu Sans", 20)).place(x=40, y=30)
for label, x in (("Abort", 120), ("Launch", 480)):
    tk.Button(root, text=label, font=("DejaVu Sans", 18), width=8,
              command=lambda label=label: print(f"clicked {label}", flush=True)).place(x=x, y=300)
root.after(50, lambda: print("ready", flush=True))
root.mainloop()
