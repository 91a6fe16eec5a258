"""A plain PyTorch training script whose optimizer is dlopt's: only the optimizer's import changes.

A 64-128-10 MLP on scikit-learn's digits, trained with AdamW, a OneCycleLR schedule and gradient
clipping, checkpointed with torch.save halfway and resumed into fresh objects. Run it as it is
(dlopt), or with --torch to use torch.optim.AdamW: the losses and accuracies agree.

Run: python examples/python/torch_mlp.py [--torch]
"""

import io
import sys

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

if "--torch" in sys.argv:
    from torch.optim import AdamW
else:
    from dlopt.torch import AdamW  # the one line that changes

EPOCHS, BATCH = 10, 64

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X / 16.0, y, test_size=0.25, random_state=0)
X_train, X_test = torch.tensor(X_train, dtype=torch.float32), torch.tensor(X_test, dtype=torch.float32)
y_train, y_test = torch.tensor(y_train), torch.tensor(y_test)
steps_per_epoch = (len(X_train) + BATCH - 1) // BATCH


def build(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    optimizer = AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-2, total_steps=EPOCHS * steps_per_epoch)
    return model, optimizer, scheduler


def train_epoch(epoch, model, optimizer, scheduler):
    order = torch.randperm(len(X_train), generator=torch.Generator().manual_seed(epoch))
    total = 0.0
    for start in range(0, len(order), BATCH):
        idx = order[start:start + BATCH]
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X_train[idx]), y_train[idx])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
        optimizer.step()
        scheduler.step()
        total += loss.item() * len(idx)
    return total / len(X_train)


def accuracy(model):
    with torch.no_grad():
        return (model(X_test).argmax(1) == y_test).float().mean().item()


def main():
    model, optimizer, scheduler = build()
    losses = []
    for epoch in range(EPOCHS // 2):
        losses.append(train_epoch(epoch, model, optimizer, scheduler))
    checkpoint = io.BytesIO()  # a file in real use
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict()}, checkpoint)

    checkpoint.seek(0)
    saved = torch.load(checkpoint)
    model, optimizer, scheduler = build(seed=1)  # fresh objects, resumed from the checkpoint
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    for epoch in range(EPOCHS // 2, EPOCHS):
        losses.append(train_epoch(epoch, model, optimizer, scheduler))
    print(f"optimizer: {type(optimizer).__module__}.{type(optimizer).__name__}")
    print("epoch losses: " + " ".join(f"{loss:.4f}" for loss in losses))
    print(f"test accuracy: {accuracy(model):.4f}")
    return losses, accuracy(model)


if __name__ == "__main__":
    main()
